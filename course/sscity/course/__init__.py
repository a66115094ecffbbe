"""The instructor toolchain: release, verify and lint the course's notebooks."""
