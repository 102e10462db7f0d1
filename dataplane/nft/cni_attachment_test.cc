#include "dataplane/nft/cni_attachment.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace sluice::nft {
namespace {

TEST(CniAttachmentTest, CommentRoundTrips) {
  CniAttachment a{"my-net.1", "0123abc", "eth0"};
  EXPECT_EQ(a.ToComment(), "net=my-net.1 id=0123abc if=eth0");
  EXPECT_EQ(CniAttachment::FromComment(a.ToComment()), a);
  EXPECT_EQ(CniAttachment::FromComment("net=a=b id=c if=d"), (CniAttachment{"a=b", "c", "d"}));
  EXPECT_FALSE(CniAttachment::FromComment("name: \"x\" id: \"y\""));
  EXPECT_FALSE(CniAttachment::FromComment("net=a id=b"));
  EXPECT_FALSE(CniAttachment::FromComment("net=a id=b if=c extra=d"));
  EXPECT_FALSE(CniAttachment::FromComment("net= id=b if=c"));
  EXPECT_THROW((CniAttachment{"a b", "c", "d"}.ToComment()), std::invalid_argument);
  EXPECT_THROW((CniAttachment{"a", "", "d"}.ToComment()), std::invalid_argument);
  EXPECT_THROW((CniAttachment{"a", "c", "d\""}.ToComment()), std::invalid_argument);
}

}  // namespace
}  // namespace sluice::nft
