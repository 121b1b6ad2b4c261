import asyncio
import socket
import threading

import pytest

FICTIONAL = "turngym/SearchQA-Fictional-v0"


@pytest.fixture(scope="session")
def fictional():
    """The fictional-country dataset (built once into the cache, shared in-process)."""
    from turngym.envs.search_qa import dataset

    return dataset.load("fictional")


class ServerThread:
    """``create_app`` on a free localhost port, in a background event loop."""

    def __init__(self, app):
        from aiohttp import web

        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def serve_app():
    servers = []

    def start(app):
        server = ServerThread(app)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()
