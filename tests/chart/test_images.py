"""The operator and runtime images, checked statically (no Docker engine here): multi-stage,
pinned slim bases, non-root, no build tools in the final stage, COPY sources that exist, and
each entrypoint importing with only that image's dependencies (the operator's without
onnxruntime, the runtime's without kopf or the kubernetes client)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from .image_contents import (
    ROOT,
    closure,
    copy_sources,
    image_requirements,
    is_pinned,
    isolated_site,
    parse_dockerfile,
    pyproject,
)

#: image -> (Dockerfile, extra it installs, console script, package, distributions it must not hold)
IMAGES = {
    "operator": (
        "operator/Dockerfile",
        "operator",
        "modelfleet",
        "modelfleet",
        {"onnxruntime", "numpy", "scikit-learn", "onnx"},
    ),
    "runtime": (
        "model_runtime/Dockerfile",
        "runtime",
        "model-runtime",
        "model_runtime",
        {"kopf", "kubernetes", "scikit-learn", "skl2onnx"},
    ),
}
PACKAGE_DIRS = {
    "modelfleet": ROOT / "operator" / "modelfleet",
    "model_runtime": ROOT / "model_runtime",
    "runtime_contract": ROOT / "runtime_contract",
    "settings_flags": ROOT / "settings_flags",
}
#: Both images hold these beside their own package: the runtime's wire contract (stdlib only)
#: and the flags-from-settings walker both command lines are built with.
SHARED_PACKAGES = ("runtime_contract", "settings_flags")


@pytest.fixture(params=sorted(IMAGES))
def image(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_dockerfile_is_multi_stage_on_a_pinned_slim_base(image: str) -> None:
    stages = parse_dockerfile(ROOT / IMAGES[image][0])
    assert len(stages) >= 2, "build in one stage, run in another"
    for stage in stages:
        assert is_pinned(stage.base), f"{stage.base} is not pinned to an exact version or digest"
        assert "slim" in stage.base or "distroless" in stage.base, stage.base


def test_final_stage_runs_as_a_non_root_user(image: str) -> None:
    final = parse_dockerfile(ROOT / IMAGES[image][0])[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    # Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert user.isdigit() and int(user) >= 10000


def test_final_stage_has_no_build_tools(image: str) -> None:
    final = parse_dockerfile(ROOT / IMAGES[image][0])[-1]
    runs = " ".join(final.all("RUN"))
    for tool in ("apt-get install", "apk add", "gcc", "build-essential", "pip install", "git "):
        assert tool not in runs, f"final stage runs {tool!r}"
    assert "pip uninstall" in runs, "the base image's pip stays in the final stage"
    assert any("--from=build" in copy for copy in final.all("COPY")), (
        "the final stage copies the built venv"
    )
    assert copy_sources(final) == [], "the final stage copies sources straight from the context"


def test_copied_sources_exist_in_the_build_context(image: str) -> None:
    # The build context is the repository root (docker build -f <image>/Dockerfile .).
    for stage in parse_dockerfile(ROOT / IMAGES[image][0]):
        for source in copy_sources(stage):
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def test_image_copies_its_package_and_the_runtime_contract(image: str) -> None:
    dockerfile, _extra, _script, package, _forbidden = IMAGES[image]
    copied = copy_sources(parse_dockerfile(ROOT / dockerfile)[0])
    for needed in (package, *SHARED_PACKAGES):
        source = PACKAGE_DIRS[needed].relative_to(ROOT).as_posix()
        assert source in copied, f"the {image} image's build stage does not COPY {source}"


def test_entrypoint_is_the_packages_console_script(image: str) -> None:
    dockerfile, _extra, script, package, _forbidden = IMAGES[image]
    final = parse_dockerfile(ROOT / dockerfile)[-1]
    assert final.all("ENTRYPOINT") == [f'["{script}"]']
    scripts = pyproject()["project"]["scripts"]  # type: ignore[index]
    assert scripts[script].startswith(f"{package}.")


def test_image_installs_its_own_extra_only(image: str) -> None:
    dockerfile, extra, *_ = IMAGES[image]
    build = parse_dockerfile(ROOT / dockerfile)[0]
    assert f'pip install --no-compile ".[{extra}]"' in " ".join(build.all("RUN"))


def test_image_dependencies_exclude_the_other_images_stack(image: str) -> None:
    _dockerfile, extra, _script, _package, forbidden = IMAGES[image]
    installed = closure(image_requirements(extra))
    assert not installed & forbidden, (
        f"the {image} image would install {sorted(installed & forbidden)}"
    )


ENTRYPOINT_CHECKS = {
    "operator": """
        import contextlib, io, importlib.util
        import modelfleet.app.operator_main, modelfleet.app.handlers, modelfleet.control.reconciler, modelfleet.io.execution
        import runtime_contract
        from modelfleet.app.cli import available_commands, main
        advertised = sorted(command.name for command in available_commands())
        assert advertised == ["crd", "operator"], advertised
        for name in advertised:
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
                main([name, "--help"])
            assert out.getvalue().startswith("usage: modelfleet " + name), out.getvalue()
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(["operator", "--help"])
        assert "--all-namespaces" in out.getvalue(), out.getvalue()
        for absent in ("onnxruntime", "numpy", "sklearn", "model_runtime", "bundle_builder", "modelfleet_dev", "kubesim"):
            assert importlib.util.find_spec(absent) is None, absent + " is importable in the operator image"
    """,
    "runtime": """
        import contextlib, io, importlib.util
        import model_runtime.server, model_runtime.sessions, model_runtime.hotswap, onnxruntime
        import runtime_contract
        from model_runtime.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(["serve", "--help"])
        assert "--annotations-file" in out.getvalue(), out.getvalue()
        for absent in ("kopf", "kubernetes", "sklearn", "skl2onnx", "modelfleet"):
            assert importlib.util.find_spec(absent) is None, absent + " is importable in the runtime image"
    """,
}


def test_entrypoint_imports_with_only_the_images_dependencies(image: str, tmp_path: Path) -> None:
    _dockerfile, extra, _script, package, _forbidden = IMAGES[image]
    site = isolated_site(closure(image_requirements(extra)), tmp_path / "site-packages")
    for copied in (package, *SHARED_PACKAGES):
        (site / copied).symlink_to(PACKAGE_DIRS[copied])
    # The project's own metadata, as `pip install .[extra]` leaves it: its entry points are the
    # console scripts' plug-ins.
    (info,) = Path(sysconfig.get_paths()["purelib"]).glob("modelfleet-*.dist-info")
    (site / info.name).symlink_to(info)
    program = f"import sys; sys.path.insert(0, {str(site)!r})\n" + textwrap.dedent(
        ENTRYPOINT_CHECKS[image]
    )
    # -S: no site-packages (this venv's included), -E: no PYTHONPATH; only `site` is importable.
    done = subprocess.run(
        [sys.executable, "-S", "-E", "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_pyproject_splits_dependencies_per_image() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extras = project.get("optional-dependencies") or {}
    assert {"operator", "runtime"} <= set(extras)
    core = closure(project["dependencies"])
    assert not core & {"onnxruntime", "kopf", "kubernetes", "scikit-learn"}


def test_exposed_ports_are_the_ones_the_chart_and_the_crd_use() -> None:
    import yaml

    from modelfleet.api.spec import RuntimeSpec

    values = yaml.safe_load(
        (ROOT / "charts" / "modelfleet" / "values.yaml").read_text(encoding="utf-8")
    )
    operator_ports = " ".join(
        parse_dockerfile(ROOT / "operator" / "Dockerfile")[-1].all("EXPOSE")
    ).split()
    assert operator_ports == [
        str(values["operator"]["metricsPort"]),
        str(values["operator"]["healthPort"]),
    ]
    runtime_ports = " ".join(
        parse_dockerfile(ROOT / "model_runtime" / "Dockerfile")[-1].all("EXPOSE")
    ).split()
    assert runtime_ports == [str(RuntimeSpec().port)]
