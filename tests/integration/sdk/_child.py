"""A program that records usage events and then ends in a chosen way (run as a subprocess).

``python _child.py record BOOTSTRAP TOPIC SPOOL_DIR N LABEL HOW [FLUSH_TIMEOUT_S]`` records N
events (user_id LABEL), prints ``recorded``, then ends by HOW: ``return``, ``sys_exit``
(status 3), ``exception``, or waits on stdin for the parent's ``sigterm`` / ``sigint``; with
``close``, calls ``sdk.close()`` on a thread, prints ``closing`` once the close is under way
(the parent signals the process then), prints ``closed`` when it returns and waits on stdin.

``python _child.py drain BOOTSTRAP TOPIC SPOOL_DIR`` records nothing, waits until the spool it
finds is re-sent, and prints its ``sdk.stats()`` as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from tokenline import sdk
from tokenline.sdk import _exit


def main(argv: list[str]) -> None:
    mode, bootstrap, topic, spool_dir = argv[:4]
    sdk.configure(
        tenant_id="acme",
        bootstrap_servers=bootstrap,
        topic=topic,
        spool_dir=spool_dir,
        detect_host=False,
        flush_timeout_s=float(argv[7]) if len(argv) > 7 else None,
    )
    if mode == "drain":
        left = sdk.flush(120)
        print(json.dumps({"left": left, **sdk.stats().as_dict()}), flush=True)
        return
    count, label, how = int(argv[4]), argv[5], argv[6]
    for i in range(count):
        sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=i, user_id=label)
    print("recorded", flush=True)
    if how == "sys_exit":
        sys.exit(3)
    if how == "exception":
        msg = "the application failed"
        raise RuntimeError(msg)
    if how == "close":
        closer = threading.Thread(target=sdk.close)
        closer.start()
        deadline = time.monotonic() + 60
        while not _exit.closing_now() and time.monotonic() < deadline:
            time.sleep(0.001)
        print("closing", flush=True)
        closer.join()
        print("closed", flush=True)
    if how in {"sigterm", "sigint", "close"}:
        sys.stdin.read()  # the parent signals the process while it waits here


if __name__ == "__main__":
    main(sys.argv[1:])
