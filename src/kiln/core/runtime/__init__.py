"""The runtime domain, pure: what an instance is and the decisions about them.

``model`` holds the frozen types every provider speaks (``LaunchSpec``,
``Instance``, labels, states, health results); ``launch`` turns a launch spec into
the argv and environment an instance starts with; ``planner`` decides which
instances to replace (dead, unhealthy, missing) and ``adoption`` matches persisted
records with live processes after a controller restart. No I/O here: providers in
``kiln.adapters.runtime`` observe the world and apply what these functions decide.

May import: ``kiln.errors`` and the standard library.
"""
