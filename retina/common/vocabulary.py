"""One flag vocabulary for every command, with the earlier spellings still accepted (hidden) for one release.

=================  ==========================================================================  ====================
flag               meaning                                                                     earlier spellings
=================  ==========================================================================  ====================
``--res``          image side in pixels (imports, phantoms, resizing, training, sampling)      ``--size``
``--batch``        images per step                                                             ``--batch-size``
``--grades``       grade(s) to draw: ``4``, ``0,2,4``, ``0-4``, ``uniform``                      ``--grade``
``--layout``       the layout model of a chain: shipped | procedural | checkpoint              ``--layout-ckpt``
``--renderer``     the renderer: shipped | procedural | checkpoint                             ``--render-ckpt``,
                                                                                               ``--checkpoint``
``--checkpoint``   the command's own model (``layout sample``) or a helper network's           ``--grader-ckpt``
                   (``--grader-checkpoint``, ``--vessels-checkpoint``)
``--snapshot-kimg``  layout trainers: grid, selection and checkpoint interval in kimg
``--every``        render trainers: the same interval in optimisation steps (they count steps)
=================  ==========================================================================  ====================

:func:`install_aliases` adds the earlier spellings to the parsed options of a click command tree without showing
them in ``--help``; a command that still has an option of the earlier name for another meaning (``retina render
--grade``: the grade of rows without one) keeps it.
"""

from __future__ import annotations

from typing import Any

ALIASES: dict[str, tuple[str, ...]] = {
    "--res": ("--size",),
    "--batch": ("--batch-size",),
    "--grades": ("--grade",),
    "--layout": ("--layout-ckpt",),
    "--renderer": ("--render-ckpt", "--checkpoint"),
    "--grader-checkpoint": ("--grader-ckpt",),
}


def _with_aliases(param: Any, aliases: list[str]) -> None:
    original = param.add_to_parser

    def add_to_parser(parser: Any, ctx: Any) -> Any:
        visible = param.opts
        param.opts = [*visible, *aliases]  # the parser learns every spelling; --help reads opts after this
        try:
            return original(parser, ctx)
        finally:
            param.opts = visible

    param.add_to_parser = add_to_parser
    param.hidden_aliases = tuple(aliases)


def install_aliases(command: Any) -> Any:
    """Accept :data:`ALIASES`' earlier spellings everywhere in ``command``'s tree; returns ``command``."""
    for sub in getattr(command, "commands", {}).values():
        install_aliases(sub)
    taken = {opt for param in command.params for opt in (*getattr(param, "opts", ()),
                                                         *getattr(param, "secondary_opts", ()))}
    for param in command.params:
        if getattr(param, "hidden_aliases", None) or getattr(param, "is_flag", False):
            continue
        aliases = [alias for opt in getattr(param, "opts", ()) for alias in ALIASES.get(opt, ()) if alias not in taken]
        if aliases:
            _with_aliases(param, aliases)
            taken.update(aliases)
    return command
