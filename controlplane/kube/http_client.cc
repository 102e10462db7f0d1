#include "controlplane/kube/http_client.h"

#include <curl/curl.h>

#include <exception>
#include <mutex>

#include "controlplane/kube/errors.h"

namespace sluice::kube {

namespace {

constexpr size_t kMaxErrorBody = 1u << 20;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct MultiDeleter {
  void operator()(CURLM* h) const { curl_multi_cleanup(h); }
};
struct UrlDeleter {
  void operator()(CURLU* h) const { curl_url_cleanup(h); }
};

// A curl_slist (header or CONNECT_TO list).
class StringList {
 public:
  StringList() = default;
  StringList(const StringList&) = delete;
  StringList& operator=(const StringList&) = delete;
  ~StringList() { curl_slist_free_all(list_); }
  void Append(const std::string& s) {
    curl_slist* next = curl_slist_append(list_, s.c_str());
    if (!next) throw std::bad_alloc();
    list_ = next;
  }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

// What the callbacks of one transfer share.
struct Transfer {
  CURL* easy = nullptr;
  const std::function<bool(std::string_view)>* on_chunk = nullptr;
  long status = 0;
  std::string body;
  bool truncated_error_body = false;
  bool consumer_stopped = false;
  std::exception_ptr consumer_error;
};

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (t->status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
  bool ok = t->status >= 200 && t->status < 300;
  if (ok && t->on_chunk) {
    try {
      if (!(*t->on_chunk)(std::string_view(data, len))) {
        t->consumer_stopped = true;
        return 0;  // ends the transfer (CURLE_WRITE_ERROR, which we then ignore)
      }
    } catch (...) {
      t->consumer_error = std::current_exception();
      return 0;
    }
    return len;
  }
  if (!ok && t->body.size() + len > kMaxErrorBody) {
    t->body.append(data, kMaxErrorBody - t->body.size());
    t->truncated_error_body = true;
    return len;
  }
  t->body.append(data, len);
  return len;
}

bool IsTlsError(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

std::string CaSource(const RestConfig& c) {
  if (!c.tls.ca_file.empty()) return "CA file " + c.tls.ca_file;
  if (!c.tls.ca_pem.empty()) return "certificate-authority-data of " + c.origin;
  return "the system trust store";
}

void SetBlob(CURL* easy, CURLoption option, const std::string& pem) {
  curl_blob blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
  curl_easy_setopt(easy, option, &blob);
}

}  // namespace

struct HttpClient::Curl {
  std::unique_ptr<CURLM, MultiDeleter> multi;
  std::unique_ptr<CURL, EasyDeleter> easy;
  char error[CURL_ERROR_SIZE] = {};
};

HttpClient::HttpClient(ApiConnection connection, HttpOptions options)
    : connection_(std::move(connection)), options_(std::move(options)), curl_(new Curl) {
  GlobalInit();
  curl_->multi.reset(curl_multi_init());
  curl_->easy.reset(curl_easy_init());
  if (!curl_->multi || !curl_->easy) throw std::bad_alloc();

  const RestConfig& c = connection_.config;
  base_url_ = c.server;
  if (!c.tls.server_name.empty()) {
    // curl has no SNI override: ask for https://<tls-server-name>:<port>/ and connect to the
    // configured host, so SNI and verification both use the name.
    std::unique_ptr<CURLU, UrlDeleter> url(curl_url());
    if (curl_url_set(url.get(), CURLUPART_URL, c.server.c_str(), 0) != CURLUE_OK) {
      throw ConfigError(c.origin + ": server \"" + c.server + "\" is not a valid URL");
    }
    char *host = nullptr, *port = nullptr;
    curl_url_get(url.get(), CURLUPART_HOST, &host, 0);
    curl_url_get(url.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    std::string h = host ? host : "", p = port ? port : "443";
    curl_free(host);
    curl_free(port);
    connect_to_ = c.tls.server_name + ":" + p + ":" + h + ":" + p;
    curl_url_set(url.get(), CURLUPART_HOST, c.tls.server_name.c_str(), 0);
    char* rewritten = nullptr;
    curl_url_get(url.get(), CURLUPART_URL, &rewritten, 0);
    base_url_ = rewritten ? rewritten : c.server;
    curl_free(rewritten);
    while (base_url_.size() > 8 && base_url_.back() == '/') base_url_.pop_back();
  }
}

HttpClient::~HttpClient() = default;

std::string HttpClient::Url(std::string_view path) const { return base_url_ + std::string(path); }

HttpResponse HttpClient::Get(std::string_view path, std::chrono::milliseconds timeout,
                             std::stop_token stop) {
  return Perform(path, timeout, std::move(stop), nullptr, nullptr);
}

HttpResponse HttpClient::Stream(std::string_view path, std::chrono::milliseconds timeout,
                                std::stop_token stop,
                                const std::function<bool(std::string_view)>& on_chunk,
                                const std::function<bool()>& on_tick) {
  return Perform(path, timeout, std::move(stop), &on_chunk, on_tick ? &on_tick : nullptr);
}

HttpResponse HttpClient::Perform(std::string_view path, std::chrono::milliseconds timeout,
                                 std::stop_token stop,
                                 const std::function<bool(std::string_view)>* on_chunk,
                                 const std::function<bool()>* on_tick) {
  Credentials::Snapshot creds = connection_.credentials->Current();
  HttpResponse r = PerformOnce(path, timeout, stop, on_chunk, on_tick, creds);
  if (r.status == 401 && connection_.credentials->Unauthorized(creds)) {
    creds = connection_.credentials->Current();
    r = PerformOnce(path, timeout, stop, on_chunk, on_tick, creds);
  }
  return r;
}

HttpResponse HttpClient::PerformOnce(std::string_view path, std::chrono::milliseconds timeout,
                                     std::stop_token stop,
                                     const std::function<bool(std::string_view)>* on_chunk,
                                     const std::function<bool()>* on_tick,
                                     const Credentials::Snapshot& creds) {
  if (stop.stop_requested()) throw Cancelled();
  const RestConfig& c = connection_.config;
  CURL* easy = curl_->easy.get();
  std::string url = Url(path);
  curl_easy_reset(easy);  // options only; connections stay cached in the multi handle

  Transfer t;
  t.easy = easy;
  t.on_chunk = on_chunk;
  curl_->error[0] = '\0';
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, curl_->error);
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnWrite);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 15L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, options_.user_agent.c_str());
  if (!c.disable_compression) curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  if (!c.proxy_url.empty()) curl_easy_setopt(easy, CURLOPT_PROXY, c.proxy_url.c_str());

  StringList headers;
  headers.Append("Accept: application/json");
  if (!creds.bearer_token.empty()) headers.Append("Authorization: Bearer " + creds.bearer_token);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers.get());
  StringList connect_to;
  if (!connect_to_.empty()) {
    connect_to.Append(connect_to_);
    curl_easy_setopt(easy, CURLOPT_CONNECT_TO, connect_to.get());
  }

  // TLS: verify unless told not to; trust, then who we are.
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, c.tls.insecure_skip_verify ? 0L : 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, c.tls.insecure_skip_verify ? 0L : 2L);
  if (!c.tls.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, c.tls.ca_file.c_str());
  if (!c.tls.ca_pem.empty()) SetBlob(easy, CURLOPT_CAINFO_BLOB, c.tls.ca_pem);
  curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
  curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
  if (!creds.client_certificate_pem.empty()) {
    SetBlob(easy, CURLOPT_SSLCERT_BLOB, creds.client_certificate_pem);
    SetBlob(easy, CURLOPT_SSLKEY_BLOB, creds.client_key_pem);
  } else {
    if (!c.tls.cert_file.empty()) curl_easy_setopt(easy, CURLOPT_SSLCERT, c.tls.cert_file.c_str());
    if (!c.tls.cert_pem.empty()) SetBlob(easy, CURLOPT_SSLCERT_BLOB, c.tls.cert_pem);
    if (!c.tls.key_file.empty()) curl_easy_setopt(easy, CURLOPT_SSLKEY, c.tls.key_file.c_str());
    if (!c.tls.key_pem.empty()) SetBlob(easy, CURLOPT_SSLKEY_BLOB, c.tls.key_pem);
  }

  CURLM* multi = curl_->multi.get();
  if (curl_multi_add_handle(multi, easy) != CURLM_OK) throw std::bad_alloc();
  struct Detach {
    CURLM* m;
    CURL* e;
    ~Detach() { curl_multi_remove_handle(m, e); }
  } detach{multi, easy};
  std::stop_callback wake(stop, [multi] { curl_multi_wakeup(multi); });

  int running = 1;
  auto next_tick = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (true) {
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK) {
      throw TransportError("GET " + url + ": " + curl_multi_strerror(mc), url, -1, false);
    }
    if (!running) break;
    if (stop.stop_requested()) throw Cancelled();
    if (on_tick && std::chrono::steady_clock::now() >= next_tick) {
      next_tick = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      bool keep_going = false;
      try {
        keep_going = (*on_tick)();
      } catch (...) {
        t.consumer_error = std::current_exception();
      }
      if (t.consumer_error) std::rethrow_exception(t.consumer_error);
      if (!keep_going) {
        t.consumer_stopped = true;
        break;
      }
    }
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    if (stop.stop_requested()) throw Cancelled();
  }
  CURLcode result = CURLE_OK;
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) result = msg->data.result;
  }
  if (t.consumer_error) std::rethrow_exception(t.consumer_error);

  HttpResponse response;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  if (char* ct = nullptr; curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct) {
    response.content_type = ct;
  }
  if (t.consumer_stopped) result = CURLE_OK;  // we ended it
  if (result != CURLE_OK) {
    std::string detail = curl_->error[0] ? curl_->error : curl_easy_strerror(result);
    if (IsTlsError(result)) {
      std::string what = result == CURLE_PEER_FAILED_VERIFICATION
                             ? "the server's certificate is not trusted by " + CaSource(c)
                             : "TLS handshake failed (trust: " + CaSource(c) + ")";
      throw TransportError("GET " + url + ": " + what + ": " + detail, url, result, true);
    }
    if (result == CURLE_OPERATION_TIMEDOUT) {
      throw TransportError("GET " + url + ": timed out: " + detail, url, result, false);
    }
    std::string at = response.status ? " (after HTTP " + std::to_string(response.status) + ")" : "";
    throw TransportError("GET " + url + ": " + detail + at, url, result, false);
  }
  response.body = std::move(t.body);
  return response;
}

}  // namespace sluice::kube
