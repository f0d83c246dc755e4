"""Running the teams' agents through an AutoGen gRPC runtime host (EVORAG_AGENT_RUNTIME_HOST).

Unset (the default), every team runs on its own in-process ``SingleThreadedAgentRuntime`` as AgentChat does
by itself. Set to ``host:port`` of a running ``evorag agents-host``, each team run connects a
``TeamWorkerRuntime`` to that host, registers its agents there and exchanges every message through it.

The gRPC channel is plaintext and unauthenticated (autogen-ext 0.7.5 has no TLS or credentials option for
workers), so the host binds to loopback unless told otherwise, and a host on another machine must be
reached over a private network or a tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import signal
import uuid
from collections.abc import AsyncIterator, Callable

from evorag.errors import ConfigError, ExternalError, UserError

logger = logging.getLogger(__name__)

_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+)):(?P<port>\d{1,5})$")
_IN_PROCESS = "unset EVORAG_AGENT_RUNTIME_HOST to run the agents in-process"
_SETTING_HINT = f"set EVORAG_AGENT_RUNTIME_HOST to host:port of a running `evorag agents-host`, or {_IN_PROCESS}"


def parse_host_address(value: str) -> str:
    """``host:port`` / ``[ipv6]:port`` as gRPC wants it; ConfigError for anything else."""
    match = _HOST_PORT.match(value.strip())
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ConfigError(f"invalid setting agent_runtime_host: {value!r} is not host:port (e.g. 127.0.0.1:50051)",
                          hint=_SETTING_HINT)
    host = f"[{match['ipv6']}]" if match["ipv6"] else match["host"]
    return f"{host}:{int(match['port'])}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; 0.0.0.0 (every interface) is not."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _probe(address: str, timeout: float) -> None:
    """Ask the host for its subscriptions: fails fast when refused, and names a server that is not a host."""
    import grpc  # the gRPC runtime is optional: see team_runtime
    from autogen_ext.runtimes.grpc.protos import agent_worker_pb2, agent_worker_pb2_grpc

    channel = grpc.aio.insecure_channel(address)
    try:
        stub = agent_worker_pb2_grpc.AgentRpcStub(channel)
        await stub.GetSubscriptions(agent_worker_pb2.GetSubscriptionsRequest(), timeout=timeout,
                                    metadata=[("client-id", f"probe-{uuid.uuid4()}")])
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            reason = f"no answer within {timeout:g} s"
        elif exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            reason = "the server there is not an agent runtime host"
        elif "Connection refused" in (exc.details() or ""):
            reason = "connection refused"
        elif "resolving" in (exc.details() or ""):
            reason = "unknown host name"
        else:
            reason = (exc.details() or exc.code().name).splitlines()[0][:200]
        raise ExternalError(f"cannot reach the agent runtime host at {address}: {reason}",
                            hint=f"start it with `evorag agents-host --port {address.rsplit(':', 1)[1]}`, "
                                 f"or {_IN_PROCESS}") from None
    finally:
        await channel.close()


@contextlib.asynccontextmanager
async def team_runtime(settings) -> AsyncIterator[object | None]:
    """The runtime a team should run on: None (in-process) or a started ``TeamWorkerRuntime``, stopped after."""
    if not settings.agent_runtime_host:
        yield None
        return
    address = parse_host_address(settings.agent_runtime_host)
    # AutoGen's gRPC runtime (and its generated stubs) load only when a runtime host is configured.
    from evorag.teams._grpc_runtime import TeamWorkerRuntime

    await _probe(address, settings.agent_runtime_connect_timeout)
    runtime = TeamWorkerRuntime(address)
    try:
        await asyncio.wait_for(runtime.start(), settings.agent_runtime_connect_timeout)
    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - the host vanished after the probe
        await runtime.stop()
        raise ExternalError(f"cannot connect to the agent runtime host at {address}: {exc or 'timed out'}",
                            hint=_SETTING_HINT) from None
    try:
        yield runtime
    finally:
        await runtime.stop()


async def run_on(runtime, stream) -> AsyncIterator[object]:
    """Relay a team's ``run_stream``; on a worker runtime, raise the runtime's error if it fails first."""
    if runtime is None:
        async for event in stream:
            yield event
        return
    failed = runtime.failed
    try:
        while True:
            step = asyncio.ensure_future(stream.__anext__())
            await asyncio.wait({step, failed}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                with contextlib.suppress(BaseException):
                    await step
                raise failed.result()
            try:
                event = step.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        await stream.aclose()


async def _until_signal(failed: asyncio.Future | None = None) -> None:
    """Until SIGINT or SIGTERM, or until ``failed`` resolves (then its error is raised)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({stopped} | ({failed} if failed else set()), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    if not stop.is_set():
        raise failed.result()


async def wait_for_stop(runtime) -> None:
    """Serve until SIGINT or SIGTERM; raise the runtime's error if it fails first (e.g. the host went away)."""
    await _until_signal(runtime.failed)


def serve_host(host: str, port: int, *, insecure_remote: bool = False,
               on_ready: Callable[[str], None] | None = None) -> None:
    """Run an agent runtime host until SIGINT or SIGTERM. Raises UserError for a refused or unusable address."""
    if not is_loopback(host) and not insecure_remote:
        raise UserError(f"refusing to serve the agent runtime on {host}: its gRPC is unauthenticated "
                        "(loopback only by default)",
                        hint="--insecure-remote, only on a private network or behind a tunnel: docs/deployment.md")
    asyncio.run(_serve(host, port, on_ready))


async def _serve(host: str, port: int, on_ready) -> None:
    import grpc  # only `evorag agents-host` serves the gRPC runtime host
    from autogen_ext.runtimes.grpc import GrpcWorkerAgentRuntimeHostServicer
    from autogen_ext.runtimes.grpc.protos import agent_worker_pb2_grpc

    # gRPC sets SO_REUSEPORT by default: a second host on the same port would then start and take a share
    # of the workers, each host seeing only some of the agents.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    agent_worker_pb2_grpc.add_AgentRpcServicer_to_server(GrpcWorkerAgentRuntimeHostServicer(), server)
    bind = f"[{host.strip('[]')}]:{port}" if ":" in host.strip("[]") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(bind)
    except RuntimeError:
        raise UserError(f"cannot listen on {bind}: the address is in use or not on this machine",
                        hint="choose another --port (0 picks a free one) or --host") from None
    await server.start()
    address = bind.rsplit(":", 1)[0] + f":{bound}"
    logger.info("agent runtime host listening on %s", address)
    if on_ready is not None:
        on_ready(address)
    try:
        await _until_signal()
    finally:
        await server.stop(grace=2)
