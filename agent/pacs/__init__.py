"""A real PACS loop over DICOMweb: find (QIDO-RS), retrieve (WADO-RS), analyze, store SEG + SR back (STOW-RS), and
a watcher that processes each newly stable study once (``radagent pacs``, agent/pacs_cli.py).

- ``client``: ``PacsSettings`` (URL, credentials from the environment only) and ``PacsClient`` (dicomweb-client).
- ``loop``: one study: retrieve, choose the CT series and its stored SEG, analyze, write, store.
- ``watch``: the state file (atomic, locked) and the polling loop.
"""
