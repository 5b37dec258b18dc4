"""A ModelDeployment can point bundleUri at an object store, with credentials from a Secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelfleet.api.spec import ModelSource, RuntimeSpec
from modelfleet.logic.revisions import WellTarget, template_hash
from modelfleet.logic.wellpod import desired_pod

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bundles/esp/{version}/{well}",
        "az://bundles/esp/{version}/{well}",
        "gs://bundles/esp/{version}/{well}.tar.gz",
    ],
)
def test_bundle_uri_accepts_object_stores(uri: str) -> None:
    assert ModelSource(name="esp", version="1.0.0", bundleUri=uri).bundle_uri == uri


def test_bundle_uri_refuses_other_schemes() -> None:
    with pytest.raises(ValidationError, match="bundleUri"):
        ModelSource(name="esp", version="1.0.0", bundleUri="ftp://host/{well}")


def test_credentials_secret_becomes_env_from_and_changes_the_template() -> None:
    target = WellTarget("w-1", "rev1", "tmpl", "1.0.0", "az://bundles/esp/1.0.0/w-1", DIGEST)
    plain = RuntimeSpec()
    with_secret = RuntimeSpec(credentialsSecret="bundle-store")
    container = desired_pod(
        deployment="fleet", deployment_uid="uid", target=target, runtime=with_secret
    )["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "bundle-store"}}]
    assert (
        "envFrom"
        not in (
            desired_pod(deployment="fleet", deployment_uid="uid", target=target, runtime=plain)[
                "spec"
            ]["containers"][0]
        )
    )
    # Environment is fixed when a container starts: another Secret means new pods.
    assert template_hash(with_secret) != template_hash(plain)
    with pytest.raises(ValidationError, match="credentialsSecret"):
        RuntimeSpec(credentialsSecret="Not_A_Name")
