"""pytest plugin (``-p tests.eventlet_patch``): monkey-patch eventlet before any test
module imports sockets or threads, as ``nameko run`` does for the services.
Only the unit and integration phase loads it; browser tests run unpatched."""
import eventlet

eventlet.monkey_patch()
