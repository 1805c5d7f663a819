//! grpc (to be written)
