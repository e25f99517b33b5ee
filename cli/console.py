"""The console script's entry point: Ctrl-C while Python is still loading the command
(before cli.main's handling of it is in place) ends it quietly too, not with a
traceback. Imports nothing until then."""

import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as cli.main exits on it


def main() -> None:
    try:
        from cli.main import main as run
    except KeyboardInterrupt:
        # Loading only: nothing was read or written yet.
        if sys.stderr is not None:
            sys.stderr.write("Interrupted: nothing was done\n")
        sys.exit(EXIT_INTERRUPTED)
    try:
        run()
    finally:
        # Its work done and said (an append committed and reported): a Ctrl-C or
        # SIGTERM while Python shuts down would end it as killed, with no word.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
