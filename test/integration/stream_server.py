#!/usr/bin/env python3
# Host side of the TCP transfer tests (t_net.sh, t_kiln_net.sh): on ADDR,
# port 5001 takes uploads (a line "bytes sha256" each, appended to
# DIR/ups) and port 5002 sends DIR/down to each download, then drains the
# peer. N streams each way at once, then it exits; N = 0: any number,
# until killed. DIR/ready appears once both ports listen.
# usage: stream_server.py DIR ADDR N
import hashlib
import socket
import sys
import threading

d, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lock = threading.Lock()
data = open(d + "/down", "rb").read()


def listener(port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(max(n, 64))
    if n:
        s.settimeout(480)
    return s


def up(c):
    h, k = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        k += len(b)
    c.close()
    with lock:
        open(d + "/ups", "a").write("%d %s\n" % (k, h.hexdigest()))


def down(c):
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    while c.recv(1 << 16):
        pass
    c.close()


def serve(s, f):
    th = []
    while not n or len(th) < n:
        c, _ = s.accept()
        x = threading.Thread(target=f, args=(c,), daemon=not n)
        x.start()
        th.append(x)
    for x in th:
        x.join()


a, b = listener(5001), listener(5002)
open(d + "/ready", "w").write("1\n")
th = [threading.Thread(target=serve, args=(s, f), daemon=not n)
      for s, f in ((a, up), (b, down))]
for x in th:
    x.start()
for x in th:
    x.join()
