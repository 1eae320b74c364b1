#include "proto/credentials.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"

namespace sp {
namespace {

absl::StatusOr<std::string> read_pem(const std::string& path, const char* what) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(path + ": cannot read the " + what);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  if (s.find("-----BEGIN ") == std::string::npos)
    return absl::InvalidArgumentError(path + ": not a PEM file (" + what + ")");
  return s;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials(const TlsServerFiles& f) {
  if (f.cert.empty() && f.key.empty()) {
    if (!f.client_ca.empty()) return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    return grpc::InsecureServerCredentials();
  }
  if (f.cert.empty() || f.key.empty()) return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  auto cert = read_pem(f.cert, "certificate");
  if (!cert.ok()) return cert.status();
  auto key = read_pem(f.key, "private key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions o(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  o.pem_key_cert_pairs.push_back({*key, *cert});
  if (!f.client_ca.empty()) {
    auto ca = read_pem(f.client_ca, "client CA");
    if (!ca.ok()) return ca.status();
    o.pem_root_certs = *ca;
    o.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(o);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials(const TlsClientFiles& f) {
  if (f.ca.empty()) {
    if (!f.cert.empty() || !f.key.empty()) return absl::InvalidArgumentError("a client certificate needs --tls-ca");
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions o;
  auto ca = read_pem(f.ca, "CA certificate");
  if (!ca.ok()) return ca.status();
  o.pem_root_certs = *ca;
  if (!f.cert.empty() || !f.key.empty()) {
    if (f.cert.empty() || f.key.empty()) return absl::InvalidArgumentError("a client certificate needs --tls-cert and --tls-key");
    auto cert = read_pem(f.cert, "client certificate");
    if (!cert.ok()) return cert.status();
    auto key = read_pem(f.key, "client private key");
    if (!key.ok()) return key.status();
    o.pem_cert_chain = *cert;
    o.pem_private_key = *key;
  }
  return grpc::SslCredentials(o);
}

}  // namespace sp
