"""A fault-injection TCP proxy for the tests (asyncio, in a thread of its own):
between tollgate and a Redis node, it forwards bytes and, when told, breaks
the link the ways networks and sick servers do.

    p = FaultProxy(("127.0.0.1", redis_port)).start()
    p.mode = "delay"; p.delay_s = 0.4     # every server -> client chunk late
    p.mode = "reset"                      # next reply: half of it, then RST
    p.mode = "blackhole"                  # nothing either way, no FIN (half-open)
    p.mode = "trickle"                    # replies one byte at a time
    p.mode = "hold"                       # replies wait (Redis still runs
                                          # every command) until the mode
                                          # changes, then flow in order
    p.sent(b"marker")                     # times a client sent those bytes
    p.mode = "pass"
    p.close()

Modes apply to every connection, existing and new, from the next chunk on.
A connection caught by "blackhole" stays dead (its bytes are dropped) even
after the mode changes back, as a half-open socket would: only the client
giving up on it and reconnecting gets through again.  Loopback only.
"""
import asyncio
import socket
import struct
import threading


class FaultProxy:
    def __init__(self, target, host="127.0.0.1"):
        self.target = target
        self.host = host
        self.port = None
        self.mode = "pass"
        self.delay_s = 0.0
        self.connections = 0  # accepted so far
        self.resets = 0
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()
        self._writers = set()
        self._up = []  # bytes each client sent (bytearray per connection)
        self._up_lock = threading.Lock()

    # -- lifecycle
    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fault proxy did not start")
        return self

    def close(self):
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(5)
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def sent(self, marker):
        """How many times `marker` occurs in what clients sent so far (one
        command's bytes are never split across connections)."""
        with self._up_lock:
            return sum(bytes(b).count(marker) for b in self._up)

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    # -- inside the loop
    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _shutdown(self):
        self._server.close()
        for w in list(self._writers):
            w.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, creader, cwriter):
        self.connections += 1
        try:
            sreader, swriter = await asyncio.open_connection(*self.target)
        except OSError:
            cwriter.close()
            return
        cwriter.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.update((cwriter, swriter))
        state = {"dead": False, "up": bytearray()}
        with self._up_lock:
            self._up.append(state["up"])
        try:
            await asyncio.gather(self._pipe(creader, swriter, state, up=True),
                                 self._pipe(sreader, cwriter, state, up=False),
                                 return_exceptions=True)
        except asyncio.CancelledError:  # close(): not an error to print
            pass
        for w in (cwriter, swriter):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader, writer, state, up):
        while True:
            data = await reader.read(65536)
            if not data:
                if not state["dead"]:
                    writer.close()  # pass the FIN on, unless half-open
                return
            if self.mode == "blackhole":
                state["dead"] = True
            if state["dead"]:
                continue  # swallowed: the peer sees neither data nor FIN
            if up:
                with self._up_lock:
                    state["up"] += data
                writer.write(data)
                await writer.drain()
                continue
            # server -> client: the faults
            while self.mode == "hold":  # until told; Redis meanwhile runs on
                await asyncio.sleep(0.005)
            if self.mode == "delay":
                await asyncio.sleep(self.delay_s)
            if self.mode == "reset":
                writer.write(data[:max(1, len(data) // 2)])
                await writer.drain()
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.resets += 1
                self.mode = "pass"  # one reset per switch
                writer.transport.abort()  # RST, mid-reply
                return
            if self.mode == "trickle":
                for i in range(len(data)):
                    writer.write(data[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(0)
                continue
            writer.write(data)
            await writer.drain()
