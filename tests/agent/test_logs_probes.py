import asyncio
import sys

import aiohttp
from aiohttp import web

from nanokube.agent import process
from nanokube.agent.logs import ContainerLog
from nanokube.agent.logserver import start_server
from nanokube.agent.probes import Prober, Target, run_action


async def _run_logged(log: ContainerLog, restart: int, script: str) -> process.ContainerProcess:
    proc = await process.start([sys.executable, "-u", "-c", script], env={"PATH": "/usr/bin:/bin"}, cwd="/",
                               isolation=process.Isolation(), log=log, restart=restart)
    await proc.exited.wait()
    return proc


async def test_logs_per_restart_served_over_http(tmp_path):
    log = ContainerLog(tmp_path / "logs" / "c")
    first = await _run_logged(log, 0, "import sys\nfor i in range(5): print('first', i)\nsys.stderr.write('err\\n')")
    assert first.exit.code == 0
    await _run_logged(log, 1, "print('second'); raise SystemExit(3)")
    runner, port = await start_server(lambda ns, pod, c: log if (ns, pod, c) == ("d", "p", "c") else "nope",
                                      "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{port}/containerLogs/d/p/c"
        async with aiohttp.ClientSession() as session:
            async def get(query=""):
                async with session.get(base + query) as resp:
                    return resp.status, await resp.text()
            assert await get() == (200, "second\n")
            status, text = await get("?previous=true")
            assert status == 200 and text.splitlines() == [f"first {i}" for i in range(5)] + ["err"]
            assert (await get("?previous=true&tailLines=2"))[1] == "first 4\nerr\n"
            assert (await get("?previous=true&limitBytes=7"))[1] == "first 0"
            status, text = await get("?timestamps=true")
            stamp, line = text.rstrip("\n").split(" ", 1)
            assert line == "second" and stamp.endswith("Z") and len(stamp) == 30
            assert (await get("?sinceSeconds=3600"))[1] == "second\n"
            async with session.get(f"http://127.0.0.1:{port}/containerLogs/d/x/c") as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()


async def test_follow_streams_until_the_container_exits(tmp_path):
    log = ContainerLog(tmp_path / "c")
    proc = await process.start([sys.executable, "-u", "-c", "import time\nprint('a')\ntime.sleep(30)\n"
                                "print('b')"], env={}, cwd="/", isolation=process.Isolation(), log=log, restart=0)
    runner, port = await start_server(lambda *a: log, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/containerLogs/d/p/c?follow=true") as resp:
                assert await resp.content.readline() == b"a\n"
                proc.signal(15)
                rest = await asyncio.wait_for(resp.content.read(), 5)
                assert rest == b""  # the stream ended because the container ended
    finally:
        await runner.cleanup()
        await proc.stop(1)


async def test_probe_handlers_against_real_sockets(tmp_path):
    async def handler(request):
        if request.headers.get("X-Check") != "yes":
            return web.Response(status=500)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]

    async def run_exec(argv, timeout):
        proc = await asyncio.create_subprocess_exec(*argv)
        try:
            return await asyncio.wait_for(proc.wait(), timeout), ""
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return -1, ""

    target = Target("127.0.0.1", {"http": port}, run_exec)
    try:
        ok = {"httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [{"name": "X-Check", "value": "yes"}]}}
        assert await run_action(ok, target, 1) == (True, "")
        bad = await run_action({"httpGet": {"path": "/healthz", "port": port}}, target, 1)
        assert bad == (False, "HTTP probe failed with statuscode: 500")
        assert (await run_action({"tcpSocket": {"port": port}}, target, 1))[0]
        closed = await run_action({"tcpSocket": {"port": 1}}, target, 1)
        assert not closed[0] and "refused" in closed[1]
        assert (await run_action({"exec": {"command": ["true"]}}, target, 1))[0]
        assert not (await run_action({"exec": {"command": ["false"]}}, target, 1))[0]
        assert not (await run_action({"exec": {"command": ["sleep", "5"]}}, target, 0.2))[0]
    finally:
        await runner.cleanup()


async def test_prober_thresholds():
    results = iter([False, True, True, False, False, False])
    seen = []

    async def run_exec(argv, timeout):
        return (0 if next(results) else 1), ""

    done = asyncio.Event()

    def changed(kind, ok, message):
        seen.append(ok)
        if len(seen) == 2:
            done.set()

    probe = {"exec": {"command": ["x"]}, "periodSeconds": 0.01, "successThreshold": 2, "failureThreshold": 3}
    prober = Prober("readiness", probe, Target("127.0.0.1", {}, run_exec), changed)
    assert prober.result is False  # readiness starts failed
    task = asyncio.ensure_future(prober.run())
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    assert seen == [True, False]  # ready after 2 successes, unready after 3 failures
