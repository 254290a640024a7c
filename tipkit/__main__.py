import sys

try:
    from tipkit.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python imports the command line: no traceback either
    sys.stderr.write("tipkit: interrupted\n")
    sys.exit(130)

sys.exit(main())
