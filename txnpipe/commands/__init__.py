"""One module per subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args, settings)``.

The CLI imports a command's module only when that command runs, so ``txnpipe query``
never pays for importing Faust.
"""
