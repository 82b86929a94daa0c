"""A real SMTP server for the portal end-to-end test (aiosmtpd).

Every message received is decoded and written to OUT_DIR as one JSON file
{"to": [...], "subject": ..., "text": ...}, which the browser test reads.
Usage: python smtp_sink.py PORT OUT_DIR
"""

import asyncio
import email
import email.policy
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        self.count += 1
        name = os.path.join(self.out_dir, f"{time.time_ns()}-{self.count}.json")
        with open(name + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"to": envelope.rcpt_tos, "subject": str(msg["subject"]), "text": text}, f)
        os.replace(name + ".tmp", name)
        print(f"smtp-sink: mail to {envelope.rcpt_tos} subject {msg['subject']!r}", flush=True)
        return "250 Message accepted"


def main():
    port = int(sys.argv[1])
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    controller = Controller(Sink(out_dir), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"smtp-sink: listening on 127.0.0.1:{port}", flush=True)
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
