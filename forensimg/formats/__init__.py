"""Image formats. Each is registered in :mod:`forensimg.registry` and imported only when used."""
