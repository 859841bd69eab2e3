"""One module per ``teethseg`` subcommand: ``NAME``, ``HELP``, ``add_arguments(parser)``, ``run(args, reporter)``.

``run`` returns a dict that becomes the final ``result`` event; it raises ``InputError`` for bad input.
"""

from TeethSegmentationLib.commands import demo, evaluate, finetune, phantom, segment, train

COMMANDS = (phantom, segment, train, finetune, evaluate, demo)
