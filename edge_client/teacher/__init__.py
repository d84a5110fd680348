"""The teacher as the edge sees it: a `TeacherClient`, over gRPC in production."""
