"""streamrec.serving."""
