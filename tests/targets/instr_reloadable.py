"""A module the reload tests rewrite (copied into a temporary directory first)."""

SCALE = 10


def version():
    return 1


class Reloadable:
    def value(self, x):
        return x + 1

    def hello(self):
        return super().__repr__()[:1]
