"""DNS answers seen on the wire, and the names they give addresses."""
