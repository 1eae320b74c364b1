// gRPC credentials from files: plain TCP, TLS, or mutual TLS. One place for the
// coordinator (server side) and its clients (workers, CLI).
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sp {

struct TlsServerFiles {
  std::string cert;       // PEM certificate chain of the coordinator (empty: plain TCP)
  std::string key;        // its private key
  std::string client_ca;  // if set, clients must present a certificate signed by this CA
};

struct TlsClientFiles {
  std::string ca;    // CA that signed the coordinator's certificate (empty: plain TCP)
  std::string cert;  // client certificate for mutual TLS (optional)
  std::string key;
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials(const TlsServerFiles& f);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials(const TlsClientFiles& f);

}  // namespace sp
