#!/usr/bin/env python3
# The other end of --console-socket, as containerd's shim and conmon are:
# listen on SOCKET, take the pty master a runtime sends (SCM_RIGHTS), set
# its size to ROWSxCOLS, copy what the master gives to OUT until the
# slave side closes, and type the bytes of INPUT (if given) after 1 s.
# usage: console_recv.py SOCKET OUT ROWS COLS [INPUT]
import array, fcntl, os, socket, struct, sys, termios, time

path, out, rows, cols = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
typed = sys.argv[5].encode() if len(sys.argv) > 5 else b""
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
s.settimeout(300)
c, _ = s.accept()
fds = array.array("i")
msg, anc, _, _ = c.recvmsg(64, socket.CMSG_LEN(fds.itemsize))
for level, typ, data in anc:
    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
        fds.frombytes(data[: fds.itemsize])
if not fds:
    sys.exit("console_recv: no fd received")
m = fds[0]
fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
f = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
t0 = time.time()
while True:
    if typed and time.time() - t0 > 1:
        os.write(m, typed)
        typed = b""
    try:
        b = os.read(m, 4096)
    except OSError:
        break
    if not b:
        break
    os.write(f, b)
