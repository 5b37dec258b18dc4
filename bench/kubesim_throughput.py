"""kubesim throughput: creates/s, list latency at 10k (and 20k) pods, watch event latency.

Why this exists: the operator benchmarks run 10,000 wells on kubesim; kubesim itself must not
be the bottleneck, and list/watch cost must not grow with unrelated objects (it indexes by
namespace and label). Run: ``.venv/bin/python bench/kubesim_throughput.py [--pods 10000]``.
kubesim runs in a background thread with its own event loop (as in the tests); the load
generator runs in the main thread. Everything is on 127.0.0.1; counts are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from kubesim.harness.testing import kubesim_in_thread
from modelfleet_dev.local_cluster import kubeconfig_server, start_kubesim


def _pod(name: str, well: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "bench", "well": f"w{well}", "shard": f"s{well % 100}"},
        },
        "spec": {"containers": [{"name": "main", "image": "registry.local/runtime:1"}]},
    }


async def _create_many(url: str, namespace: str, start: int, count: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(start, start + count):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = json.dumps(_pod(f"p{i}", i)).encode()
                async with session.post(
                    f"{url}/api/v1/namespaces/{namespace}/pods",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"create p{i}: {resp.status} {await resp.text()}")
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


async def _list_latency(url: str, path: str, repeat: int) -> tuple[float, int]:
    times: list[float] = []
    items = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(repeat):
            started = time.perf_counter()
            async with session.get(url + path) as resp:
                body = await resp.read()
            times.append(time.perf_counter() - started)
            items = len(json.loads(body)["items"])
    return statistics.median(times) * 1000, items


async def _watch_latency(
    url: str, namespace: str, events: int, watchers: int
) -> tuple[float, float]:
    """Time from sending a create to each watcher receiving its ADDED event."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v1/namespaces/{namespace}/configmaps") as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        received: list[dict[str, float]] = [{} for _ in range(watchers)]

        async def watch(index: int) -> None:
            async with session.get(
                f"{url}/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={rv}",
                timeout=aiohttp.ClientTimeout(total=120),
            ) as stream:
                while len(received[index]) < events:
                    line = await stream.content.readline()
                    if not line:
                        return
                    name = json.loads(line)["object"]["metadata"]["name"]
                    received[index][name] = time.perf_counter()

        tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
        await asyncio.sleep(0.2)
        sent: dict[str, float] = {}
        for i in range(events):
            name = f"cm{i}"
            sent[name] = time.perf_counter()
            async with session.post(
                f"{url}/api/v1/namespaces/{namespace}/configmaps",
                json={"metadata": {"name": name}},
            ) as resp:
                await resp.read()
            await asyncio.sleep(0.002)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    lat = [(got[n] - sent[n]) * 1000 for got in received for n in sent if n in got]
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def _client_creates(kubeconfig: Path, count: int) -> float:
    from kubernetes import client, config

    loader: Any = config
    api: Any = client.CoreV1Api(loader.new_client_from_config(str(kubeconfig)))
    started = time.perf_counter()
    for i in range(count):
        api.create_namespaced_config_map("client-bench", {"metadata": {"name": f"c{i}"}})
    return count / (time.perf_counter() - started)


async def _create_namespaces(url: str, names: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        for name in names:
            async with session.post(
                f"{url}/api/v1/namespaces", json={"metadata": {"name": name}}
            ) as resp:
                await resp.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10_000, help="pods for the list measurements")
    parser.add_argument(
        "--extra-pods", type=int, default=10_000, help="unrelated pods added afterwards"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--client-creates", type=int, default=500)
    parser.add_argument("--watch-events", type=int, default=300)
    parser.add_argument("--watchers", type=int, default=5)
    parser.add_argument(
        "--separate-process",
        action="store_true",
        help="run kubesim as `python -m kubesim serve` in its own process (no shared GIL)",
    )
    args = parser.parse_args()
    if args.separate_process:
        _run_separate(args)
        return
    with tempfile.TemporaryDirectory() as tmp, kubesim_in_thread(Path(tmp)) as sim:
        url = sim.url
        asyncio.run(_create_namespaces(url, ["bench", "other", "client-bench", "watch-bench"]))
        rate = asyncio.run(_create_many(url, "bench", 0, args.pods, args.concurrency))
        print(
            f"creates/s (raw aiohttp, {args.concurrency} concurrent, pods, instant kubelet): {rate:,.0f}"
        )
        rate = _client_creates(sim.kubeconfig, args.client_creates)
        print(f"creates/s (kubernetes python client, sequential, configmaps): {rate:,.0f}")
        time.sleep(1.0)
        ready = sim.call_sync(
            lambda: sum(
                1
                for e in sim.store.iter_all("/pods")
                if e.obj.get("status", {}).get("phase") == "Running"
            )
        )
        print(f"pods Running after creates: {ready}/{args.pods}")
        for label, extra in (("", 0), (" after unrelated pods", args.extra_pods)):
            if extra:
                asyncio.run(_create_many(url, "other", args.pods, extra, args.concurrency))
            total = sim.call_sync(lambda: sim.store.collection("/pods").count)
            full, n = asyncio.run(_list_latency(url, "/api/v1/namespaces/bench/pods", 5))
            print(f"list {n} pods in namespace (store holds {total}){label}: median {full:.1f} ms")
            sel, n = asyncio.run(
                _list_latency(url, "/api/v1/namespaces/bench/pods?labelSelector=well%3Dw42", 20)
            )
            print(
                f"list with labelSelector well=w42 ({n} match, store holds {total}){label}: median {sel:.2f} ms"
            )
            sel, n = asyncio.run(
                _list_latency(url, "/api/v1/namespaces/bench/pods?labelSelector=shard%3Ds7", 20)
            )
            print(
                f"list with labelSelector shard=s7 ({n} match, store holds {total}){label}: median {sel:.2f} ms"
            )
            page, n = asyncio.run(_list_latency(url, "/api/v1/namespaces/bench/pods?limit=500", 10))
            print(f"list first page limit=500 ({n} items){label}: median {page:.1f} ms")
        p50, p99 = asyncio.run(_watch_latency(url, "watch-bench", args.watch_events, args.watchers))
        print(
            f"watch event latency ({args.watchers} watchers, {args.watch_events} events): p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run_separate(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        proc = start_kubesim(work_dir, kubelet="instant")
        kubeconfig = work_dir / "kubeconfig"
        try:
            url = kubeconfig_server(kubeconfig)
            asyncio.run(_create_namespaces(url, ["bench", "other", "client-bench", "watch-bench"]))
            rate = asyncio.run(_create_many(url, "bench", 0, args.pods, args.concurrency))
            print(
                f"[separate process] creates/s (raw aiohttp, {args.concurrency} concurrent, pods): {rate:,.0f}"
            )
            rate = _client_creates(kubeconfig, args.client_creates)
            print(
                f"[separate process] creates/s (kubernetes client, sequential, configmaps): {rate:,.0f}"
            )
            asyncio.run(_create_many(url, "other", args.pods, args.extra_pods, args.concurrency))
            print(
                f"[separate process] kubesim RSS with {args.pods + args.extra_pods} pods: {_rss_mb(proc.pid):.0f} MB"
            )
            full, n = asyncio.run(_list_latency(url, "/api/v1/namespaces/bench/pods", 5))
            print(
                f"[separate process] list {n} pods (store holds {args.pods + args.extra_pods}): median {full:.1f} ms"
            )
            sel, n = asyncio.run(
                _list_latency(url, "/api/v1/namespaces/bench/pods?labelSelector=well%3Dw42", 20)
            )
            print(
                f"[separate process] list labelSelector well=w42 ({n} match): median {sel:.2f} ms"
            )
            p50, p99 = asyncio.run(
                _watch_latency(url, "watch-bench", args.watch_events, args.watchers)
            )
            print(
                f"[separate process] watch event latency ({args.watchers} watchers): p50 {p50:.2f} ms, p99 {p99:.2f} ms"
            )
        finally:
            proc.stop(timeout=30)


if __name__ == "__main__":
    main()
