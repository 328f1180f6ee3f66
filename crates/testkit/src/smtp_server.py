# The test kit's SMTP server (crates/testkit/src/smtp.rs), on aiosmtpd: python smtp_server.py DIR
#
# Listens on 127.0.0.1 on a port the system picks and prints that port on stdout. Each message
# is written as it arrived, its envelope recipients first as `X-RcptTo:` lines, to DIR/new/
# (through DIR/tmp/, so a reader never sees half a message), named in order of arrival.
# Recipients at refused.invalid are refused for good (550), those at busy.invalid for now (451).
# Exits when its standard input closes: when the test that started it is gone.
import asyncio
import os
import sys
import threading

from aiosmtpd.smtp import SMTP

root = sys.argv[1]
for sub in ("tmp", "new"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
count = 0


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rpartition("@")[2].lower()
        if domain == "refused.invalid":
            # Repeats the address, as real servers do.
            return f"550 5.1.1 <{address}>: No such mailbox here"
        if domain == "busy.invalid":
            return "451 4.3.0 Busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        name = f"{count:06d}.eml"
        head = "".join(f"X-RcptTo: {r}\r\n" for r in envelope.rcpt_tos).encode()
        tmp = os.path.join(root, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(head + envelope.original_content)
        os.rename(tmp, os.path.join(root, "new", name))
        return "250 OK"


def exit_with_parent():
    sys.stdin.buffer.read()
    os._exit(0)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Handler(), hostname="carebridge-test-smtp", enable_SMTPUTF8=True),
        "127.0.0.1",
        0,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


threading.Thread(target=exit_with_parent, daemon=True).start()
asyncio.run(main())
