"""streamrec.trainer."""
