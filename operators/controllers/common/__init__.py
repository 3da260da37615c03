"""What every workload controller shares: the controller loop, ownership (claim, adopt, release),
pod control (slow-start creates, deletes, events), expectations and ControllerRevision history."""
