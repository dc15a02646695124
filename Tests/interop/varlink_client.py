#!/usr/bin/env python3
"""Talks to tesserad with the independent `varlink` client from PyPI.

Usage: varlink_client.py SOCKET_PATH JOB

Prints one line per check, "ok: ..." or "FAIL: ...", and exits 1 if any
check failed. The integration test runs it against a real daemon.
"""
import sys

import varlink


def main():
    socket_path, job = sys.argv[1], sys.argv[2]
    failures = 0

    def check(condition, what):
        nonlocal failures
        print(("ok: " if condition else "FAIL: ") + what, flush=True)
        if not condition:
            failures += 1

    with varlink.Client(address="unix:" + socket_path) as client:
        # The client fetches and parses our interface description itself.
        with client.open("io.tessera.Manager", namespaced=True) as manager:
            status = manager.GetStatus().status
            check(status.jobs >= 1, "GetStatus reports the loaded jobs")

            run_id = manager.StartRun(job, None).id
            check(isinstance(run_id, int) and run_id >= 1, "StartRun returns an integer id")

            states = []
            for reply in manager.WatchRun(run_id, _more=True):
                states.append(reply.run.state)
            check(states and states[-1] == "succeeded", "WatchRun streams until the run succeeds: %s" % states)

            tasks = manager.ListTasks(run_id, None, None, None).tasks
            check(all(t.state == "succeeded" for t in tasks) and len(tasks) > 0, "ListTasks lists the tasks")

            try:
                manager.GetRun(123456)
                check(False, "GetRun of a missing run raises")
            except varlink.VarlinkError as error:
                check(error.error() == "io.tessera.Manager.RunNotFound", "GetRun of a missing run: " + error.error())

        with client.open("org.varlink.service", namespaced=True) as service:
            info = service.GetInfo()
            check("io.tessera.Manager" in info.interfaces, "GetInfo lists io.tessera.Manager")

    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
