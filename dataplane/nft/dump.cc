#include "dataplane/nft/dump.h"

#include <endian.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>

#include <cerrno>
#include <memory>
#include <string>

#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/nft_error.h"

namespace sluice::nft {
namespace {

constexpr int kDumpAttempts = 16;
// Requests carry at most a few names and one key.
constexpr size_t kRequestSize = 8192;

struct RequestBuffer {
  alignas(nlmsghdr) char bytes[kRequestSize];
};

// Runs `attempt` until it is not interrupted by a concurrent ruleset change. Returns false if
// the object asked for does not exist.
template <typename Attempt>
bool WithRetries(Attempt&& attempt) {
  for (int i = 1;; ++i) {
    try {
      attempt();
      return true;
    } catch (const NftError& e) {
      if (e.error() == ENOENT) return false;
      if (e.error() != EINTR || i == kDumpAttempts) throw;
    }
  }
}

std::string Where(uint16_t family, std::string_view table, std::string_view name = {}) {
  std::string s = FamilyName(family) + " " + std::string(table);
  if (!name.empty()) s += " " + std::string(name);
  return s;
}

}  // namespace

std::vector<TablePtr> ListTables(NftSocket& socket, uint16_t family) {
  std::vector<TablePtr> tables;
  WithRetries([&] {
    tables.clear();
    auto buf = std::make_unique<RequestBuffer>();
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf->bytes, NFT_MSG_GETTABLE, family, NLM_F_DUMP, 0);
    socket.Query(*nlh, "list tables", [&](const nlmsghdr& message) {
      TablePtr table = NewTableObject();
      if (nftnl_table_nlmsg_parse(&message, table.get()) < 0) {
        throw NftError(EPROTO, "parse table");
      }
      tables.push_back(std::move(table));
    });
  });
  return tables;
}

std::vector<ChainPtr> ListChains(NftSocket& socket, uint16_t family, std::string_view table) {
  std::vector<ChainPtr> chains;
  WithRetries([&] {
    chains.clear();
    auto buf = std::make_unique<RequestBuffer>();
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf->bytes, NFT_MSG_GETCHAIN, family, NLM_F_DUMP, 0);
    ChainPtr filter = MakeChain(family, table, "");
    nftnl_chain_unset(filter.get(), NFTNL_CHAIN_NAME);
    nftnl_chain_nlmsg_build_payload(nlh, filter.get());
    socket.Query(*nlh, "list chains of table " + Where(family, table),
                 [&](const nlmsghdr& message) {
                   ChainPtr chain = NewChainObject();
                   if (nftnl_chain_nlmsg_parse(&message, chain.get()) < 0) {
                     throw NftError(EPROTO, "parse chain");
                   }
                   // Older kernels ignore the table filter of a chain dump.
                   const char* name = nftnl_chain_get_str(chain.get(), NFTNL_CHAIN_TABLE);
                   if (name != nullptr && table == name) chains.push_back(std::move(chain));
                 });
  });
  return chains;
}

ChainPtr GetChain(NftSocket& socket, uint16_t family, std::string_view table,
                  std::string_view chain) {
  ChainPtr found;
  WithRetries([&] {
    auto buf = std::make_unique<RequestBuffer>();
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf->bytes, NFT_MSG_GETCHAIN, family, 0, 0);
    ChainPtr request = MakeChain(family, table, chain);
    nftnl_chain_nlmsg_build_payload(nlh, request.get());
    socket.Query(*nlh, "get chain " + Where(family, table, chain), [&](const nlmsghdr& message) {
      found = NewChainObject();
      if (nftnl_chain_nlmsg_parse(&message, found.get()) < 0) {
        throw NftError(EPROTO, "parse chain");
      }
    });
  });
  return found;
}

std::vector<RulePtr> ListRules(NftSocket& socket, uint16_t family, std::string_view table,
                               std::string_view chain) {
  std::vector<RulePtr> rules;
  WithRetries([&] {
    rules.clear();
    auto buf = std::make_unique<RequestBuffer>();
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf->bytes, NFT_MSG_GETRULE, family, NLM_F_DUMP, 0);
    RulePtr filter = NewRuleObject();
    nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, std::string(table).c_str());
    nftnl_rule_set_str(filter.get(), NFTNL_RULE_CHAIN, std::string(chain).c_str());
    nftnl_rule_nlmsg_build_payload(nlh, filter.get());
    socket.Query(*nlh, "list rules of chain " + Where(family, table, chain),
                 [&](const nlmsghdr& message) {
                   RulePtr rule = NewRuleObject();
                   if (nftnl_rule_nlmsg_parse(&message, rule.get()) < 0) {
                     throw NftError(EPROTO, "parse rule");
                   }
                   const char* t = nftnl_rule_get_str(rule.get(), NFTNL_RULE_TABLE);
                   const char* c = nftnl_rule_get_str(rule.get(), NFTNL_RULE_CHAIN);
                   if (t != nullptr && c != nullptr && table == t && chain == c) {
                     rules.push_back(std::move(rule));
                   }
                 });
  });
  return rules;
}

std::vector<RuleSummary> ListRuleSummaries(NftSocket& socket, uint16_t family,
                                           std::string_view table) {
  std::vector<RuleSummary> rules;
  WithRetries([&] {
    rules.clear();
    auto buf = std::make_unique<RequestBuffer>();
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf->bytes, NFT_MSG_GETRULE, family, NLM_F_DUMP, 0);
    RulePtr filter = NewRuleObject();
    nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, std::string(table).c_str());
    nftnl_rule_nlmsg_build_payload(nlh, filter.get());
    socket.Query(*nlh, "list rules of table " + Where(family, table),
                 [&](const nlmsghdr& message) {
                   const nlattr* attrs[NFTA_RULE_MAX + 1] = {};
                   auto collect = [](const nlattr* attr, void* data) -> int {
                     auto** tb = static_cast<const nlattr**>(data);
                     const int type = mnl_attr_get_type(attr);
                     if (type >= 0 && type <= NFTA_RULE_MAX) tb[type] = attr;
                     return MNL_CB_OK;
                   };
                   if (mnl_attr_parse(&message, sizeof(nfgenmsg), collect, attrs) < 0) {
                     throw NftError(EPROTO, "parse rule");
                   }
                   if (!attrs[NFTA_RULE_TABLE] || !attrs[NFTA_RULE_CHAIN] ||
                       table != mnl_attr_get_str(attrs[NFTA_RULE_TABLE])) {
                     return;
                   }
                   RuleSummary r;
                   r.chain = mnl_attr_get_str(attrs[NFTA_RULE_CHAIN]);
                   if (attrs[NFTA_RULE_HANDLE]) {
                     r.handle = be64toh(mnl_attr_get_u64(attrs[NFTA_RULE_HANDLE]));
                   }
                   if (const nlattr* u = attrs[NFTA_RULE_USERDATA]) {
                     const auto* p = static_cast<const uint8_t*>(mnl_attr_get_payload(u));
                     r.udata.assign(p, p + mnl_attr_get_payload_len(u));
                   }
                   rules.push_back(std::move(r));
                 });
  });
  return rules;
}

std::vector<SetPtr> ListSets(NftSocket& socket, uint16_t family, std::string_view table) {
  std::vector<SetPtr> sets;
  WithRetries([&] {
    sets.clear();
    auto buf = std::make_unique<RequestBuffer>();
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf->bytes, NFT_MSG_GETSET, family, NLM_F_DUMP, 0);
    SetPtr filter = NewSetObject();
    nftnl_set_set_str(filter.get(), NFTNL_SET_TABLE, std::string(table).c_str());
    nftnl_set_nlmsg_build_payload(nlh, filter.get());
    socket.Query(*nlh, "list sets of table " + Where(family, table),
                 [&](const nlmsghdr& message) {
                   SetPtr set = NewSetObject();
                   if (nftnl_set_nlmsg_parse(&message, set.get()) < 0) {
                     throw NftError(EPROTO, "parse set");
                   }
                   const char* t = nftnl_set_get_str(set.get(), NFTNL_SET_TABLE);
                   if (t != nullptr && table == t) sets.push_back(std::move(set));
                 });
  });
  return sets;
}

SetPtr ListSetElems(NftSocket& socket, uint16_t family, std::string_view table,
                    std::string_view set) {
  SetPtr result;
  bool exists = WithRetries([&] {
    result = MakeSetRef(family, table, set);
    auto buf = std::make_unique<RequestBuffer>();
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf->bytes, NFT_MSG_GETSETELEM, family, NLM_F_DUMP, 0);
    nftnl_set_elems_nlmsg_build_payload(nlh, result.get());
    socket.Query(*nlh, "list elements of set " + Where(family, table, set),
                 [&](const nlmsghdr& message) {
                   // Each message appends its elements to the same set object.
                   if (nftnl_set_elems_nlmsg_parse(&message, result.get()) < 0) {
                     throw NftError(EPROTO, "parse set elements");
                   }
                 });
  });
  if (!exists) result.reset();
  return result;
}

SetPtr GetSetElem(NftSocket& socket, uint16_t family, std::string_view table, std::string_view set,
                  std::span<const uint8_t> key) {
  SetPtr found;
  WithRetries([&] {
    SetPtr request = MakeSetRef(family, table, set);
    nftnl_set_elem_add(request.get(), MakeSetElem(key).release());
    auto buf = std::make_unique<RequestBuffer>();
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf->bytes, NFT_MSG_GETSETELEM, family, 0, 0);
    nftnl_set_elems_nlmsg_build_payload(nlh, request.get());
    socket.Query(*nlh, "get element of set " + Where(family, table, set),
                 [&](const nlmsghdr& message) {
                   SetPtr reply = MakeSetRef(family, table, set);
                   if (nftnl_set_elems_nlmsg_parse(&message, reply.get()) < 0) {
                     throw NftError(EPROTO, "parse set element");
                   }
                   if (!SetElems(*reply).empty()) found = std::move(reply);
                 });
  });
  return found;
}

std::vector<nftnl_set_elem*> SetElems(const nftnl_set& set) {
  std::vector<nftnl_set_elem*> elems;
  nftnl_set_elems_iter* iter = nftnl_set_elems_iter_create(&set);
  if (iter == nullptr) throw std::bad_alloc();
  while (nftnl_set_elem* elem = nftnl_set_elems_iter_next(iter)) elems.push_back(elem);
  nftnl_set_elems_iter_destroy(iter);
  return elems;
}

std::span<const uint8_t> ElemKey(nftnl_set_elem& elem) {
  uint32_t len = 0;
  const void* key = nftnl_set_elem_get(&elem, NFTNL_SET_ELEM_KEY, &len);
  if (key == nullptr) return {};
  return {static_cast<const uint8_t*>(key), len};
}

}  // namespace sluice::nft
