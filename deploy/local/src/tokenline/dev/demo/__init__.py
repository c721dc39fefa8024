"""``tokenline demo``: the whole pipeline on the local stack (see :mod:`.run`)."""
