"""radagent's shared root: the error tree (``radagent.errors``) that every stage imports.

The stages themselves live in the top-level packages ``perception``, ``reasoning``, ``templates``,
``agent`` and ``eval`` (see tests/test_boundaries.py for the import rules between them); this
package holds only what all of them share and must therefore depend on none of them.
"""
