// See common/build_commit.rs.
include!("../common/build_commit.rs");
