"""streamrec.operator."""
