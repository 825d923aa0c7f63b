#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Host side of the vsock integration test (Firecracker's protocol).

  vsock_host.py serve PATH
      listen on PATH (<uds>_<port>), accept one guest connection, read to
      EOF, answer the sha256 (hex) of what arrived, close.
  vsock_host.py clients UDS PORT N BYTES VERDICT_PORT
      N concurrent clients: CONNECT PORT, expect "OK <n>", send BYTES of
      random data, shut down writing, read the echo to EOF and compare.
      First: CONNECT to a port nobody listens on must be closed without OK.
      Last: CONNECT VERDICT_PORT and send PASS or FAIL. Exit 0 on success.
"""
import hashlib
import os
import socket
import sys
import threading
import time


def serve(path):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(4)
    ls.settimeout(300)
    c, _ = ls.accept()
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
    c.sendall(h.hexdigest().encode())
    c.close()
    ls.close()
    os.unlink(path)
    print("serve: %d bytes, sha256 %s" % (n, h.hexdigest()))


def connect(uds, port, timeout=60):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(uds)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            s.close()
            return None, line
        line += b
    return s, line


def client(uds, port, nbytes, results, i):
    try:
        s, line = connect(uds, port)
        if s is None or not line.startswith(b"OK "):
            results[i] = "no OK: %r" % line
            return
        data = os.urandom(nbytes)
        got = []

        def reader():
            while True:
                b = s.recv(1 << 16)
                if not b:
                    break
                got.append(b)

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t.join()
        s.close()
        echo = b"".join(got)
        results[i] = "ok" if echo == data else \
            "echo differs: sent %d got %d bytes" % (len(data), len(echo))
    except Exception as e:  # noqa: BLE001 - report any failure
        results[i] = "error: %r" % e


def clients(uds, port, n, nbytes, verdict_port):
    ok = True
    s, line = connect(uds, 7777, timeout=30)
    if s is not None or line:
        print("CONNECT to a closed guest port: got %r, want a close" % line)
        ok = False
    results = [None] * n
    t0 = time.time()
    ts = [threading.Thread(target=client, args=(uds, port, nbytes, results, i))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.time() - t0
    for i, r in enumerate(results):
        if r != "ok":
            print("client %d: %s" % (i, r))
            ok = False
    print("clients: %d x %d bytes echoed in %.1f s: %.1f MiB/s each way"
          % (n, nbytes, dt, n * nbytes / dt / (1 << 20)))
    s, line = connect(uds, verdict_port)
    if s is not None:
        s.sendall(b"PASS" if ok else b"FAIL")
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
    else:
        print("verdict port: %r" % line)
        ok = False
    print("clients:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
        return 0
    if len(sys.argv) == 7 and sys.argv[1] == "clients":
        a = sys.argv
        return clients(a[2], int(a[3]), int(a[4]), int(a[5]), int(a[6]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
