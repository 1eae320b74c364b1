// fault_proxy: a TCP proxy for tests that delays, cuts and corrupts what passes through.
//   fault_proxy --upstream HOST:PORT [--delay-ms N] [--cut-every BYTES] [--corrupt-every BYTES]
//               [--seed N] [--pause-file FILE] --addr-file FILE --stats-file FILE
// While --pause-file exists nothing is forwarded (a network partition).
// Listens on 127.0.0.1 (a free port, written to --addr-file). Corruption flips one byte
// inside long bursts only (>= 64 KiB read at once, i.e. blob payloads), so small control
// messages pass intact while data is damaged; cuts close a connection once it has carried
// about N bytes. On SIGTERM it writes "connections bytes corrupted cuts" to --stats-file.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<uint64_t> g_connections{0}, g_bytes{0}, g_corrupted{0}, g_cuts{0};
std::atomic<bool> g_stop{false};
int64_t g_delay_ms = 0, g_cut_every = 0, g_corrupt_every = 0;
std::string g_pause_file;

bool paused() {
  if (g_pause_file.empty()) return false;
  return ::access(g_pause_file.c_str(), F_OK) == 0;
}
uint64_t g_seed = 1;
std::string g_upstream_host;
int g_upstream_port = 0;

int connect_upstream() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(g_upstream_port));
  ::inet_pton(AF_INET, g_upstream_host.c_str(), &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Copies from `in` to `out` until either side closes, applying the faults.
void pump(int in, int out, uint64_t seed, std::atomic<bool>* done) {
  std::mt19937_64 rng(seed);
  std::vector<char> buf(1 << 20);
  uint64_t carried = 0;
  uint64_t next_corrupt = g_corrupt_every > 0 ? rng() % static_cast<uint64_t>(g_corrupt_every) : 0;
  const uint64_t cut_at = g_cut_every > 0 ? static_cast<uint64_t>(g_cut_every) / 2 + rng() % static_cast<uint64_t>(g_cut_every) : 0;
  while (!*done && !g_stop) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n <= 0) break;
    while (paused() && !g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // partition
    if (g_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(g_delay_ms));
    if (g_corrupt_every > 0 && n >= (64 << 10)) {
      if (carried + static_cast<uint64_t>(n) > next_corrupt) {
        buf[static_cast<size_t>(n) / 2 + rng() % (static_cast<size_t>(n) / 4)] ^= 0x5a;  // deep inside the burst
        g_corrupted++;
        next_corrupt = carried + static_cast<uint64_t>(n) + static_cast<uint64_t>(g_corrupt_every);
      }
    }
    carried += static_cast<uint64_t>(n);
    g_bytes += static_cast<uint64_t>(n);
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n - off));
      if (w <= 0) {
        *done = true;
        break;
      }
      off += w;
    }
    if (cut_at > 0 && carried >= cut_at) {
      g_cuts++;
      break;
    }
  }
  *done = true;
  ::shutdown(in, SHUT_RDWR);
  ::shutdown(out, SHUT_RDWR);
}

void serve(int client, uint64_t seed) {
  const int up = connect_upstream();
  if (up < 0) {
    ::close(client);
    return;
  }
  g_connections++;
  std::atomic<bool> done{false};
  std::thread a(pump, client, up, seed * 2 + 1, &done);
  std::thread b(pump, up, client, seed * 2 + 2, &done);
  a.join();
  b.join();
  ::close(client);
  ::close(up);
}

std::string arg(int argc, char** argv, const char* name, const char* dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return dflt;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string upstream = arg(argc, argv, "--upstream", "");
  const std::string addr_file = arg(argc, argv, "--addr-file", "");
  const std::string stats_file = arg(argc, argv, "--stats-file", "");
  if (upstream.empty() || addr_file.empty()) {
    std::fprintf(stderr, "usage: fault_proxy --upstream HOST:PORT --addr-file FILE [--stats-file FILE] ...\n");
    return 2;
  }
  g_upstream_host = upstream.substr(0, upstream.rfind(':'));
  g_upstream_port = std::atoi(upstream.substr(upstream.rfind(':') + 1).c_str());
  g_delay_ms = std::atoll(arg(argc, argv, "--delay-ms", "0").c_str());
  g_cut_every = std::atoll(arg(argc, argv, "--cut-every", "0").c_str());
  g_corrupt_every = std::atoll(arg(argc, argv, "--corrupt-every", "0").c_str());
  g_seed = std::strtoull(arg(argc, argv, "--seed", "1").c_str(), nullptr, 10);
  g_pause_file = arg(argc, argv, "--pause-file", "");

  ::signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error on write, not a crash
  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(lfd, 64) != 0) return 1;
  socklen_t len = sizeof sa;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  {  // written whole, then renamed: a reader never sees an empty or partial address
    const std::string tmp = addr_file + ".tmp";
    std::ofstream(tmp) << "127.0.0.1:" << ntohs(sa.sin_port) << "\n";
    if (std::rename(tmp.c_str(), addr_file.c_str()) != 0) return 1;
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([lfd] {
    uint64_t n = 0;
    while (!g_stop) {
      const int c = ::accept(lfd, nullptr, nullptr);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
        break;
      }
      std::thread(serve, c, g_seed * 1000 + n++).detach();
    }
  }).detach();
  int sig = 0;
  sigwait(&set, &sig);
  g_stop = true;
  if (!stats_file.empty())
    std::ofstream(stats_file) << g_connections << " " << g_bytes << " " << g_corrupted << " " << g_cuts << "\n";
  std::_Exit(0);
}
