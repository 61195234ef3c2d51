"""Hardware drivers and stand-ins: load cells, gate scanners, camera sources.

They read values, nothing more.
"""
