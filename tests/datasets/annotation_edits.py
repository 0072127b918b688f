"""Edits the pre-check tests make to a fixture's annotation JSON."""


def set_field(field, value, index=1):
    """An edit that sets annotation ``index``'s ``field`` to ``value``, or,
    for a ``(position, value)`` tuple, that item of the field's list."""

    def edit(data):
        ann = data['annotations'][index]
        if isinstance(value, tuple):
            ann[field][value[0]] = value[1]
        else:
            ann[field] = value

    return edit
