"""Task names: the wire contract. Flower and routing address tasks by name, so renaming a module
never breaks a message in flight."""

PLAN = "kdoctor.plan"
PROBE = "kdoctor.probe"
FIRE = "kdoctor.fire"
