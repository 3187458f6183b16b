"""The `sc` command (search classes); its search is shared with `sm`."""
