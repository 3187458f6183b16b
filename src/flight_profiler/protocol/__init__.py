"""Wire protocol shared by the client and the in-target agent.

Runs on BOTH sides of the process boundary: stdlib only, Python 3.8 syntax.
"""
