"""One module per subcommand; each exposes ``HELP``, ``add_arguments(parser)`` and ``run(args, settings)``.

The CLI imports a command's module only when that command runs, so ``txnpipe query``
never pays for importing Faust.
"""
