"""DNS providers behind one interface (``base.Provider``)."""
