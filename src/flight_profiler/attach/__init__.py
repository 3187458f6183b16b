"""Getting our agent into a target, and talking to it (client side).

``connect(pid, options)`` is the entry point; see ``attacher`` for the sequence.
"""
