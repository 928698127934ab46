#include "node/service/unparsable_request.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace fedshare::service {
namespace {

using grpc::experimental::InterceptionHookPoints;

class UnparsableRequest : public grpc::experimental::Interceptor {
 public:
  explicit UnparsableRequest(std::string method) : method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsable_ = true;
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status sent = methods->GetSendStatus();
      // Our handlers never send INTERNAL without a message.
      if (sent.error_code() == grpc::StatusCode::INTERNAL &&
          (unparsable_ || sent.error_message().empty() || sent.error_message() == "No payload")) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("the request to ", method_,
                         " is not a valid protobuf message of the method's request type; "
                         "send messages built from fedshare's proto files (proto/fedshare/v1)")));
      }
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  bool unparsable_ = false;
};

class Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new UnparsableRequest(info->method() != nullptr ? info->method() : "");
  }
};

}  // namespace

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
UnparsableRequestInterceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<Factory>());
  return factories;
}

}  // namespace fedshare::service
