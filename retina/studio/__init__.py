"""``retina studio``: make, edit and render a retina in the browser (:mod:`retina.studio.app`), over the plain
session logic of :mod:`retina.studio.session`."""
