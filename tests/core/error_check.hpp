// Helpers for asserting that a call throws porta::Error with a given code and a message that
// names the things a user needs to see (the op, node, shapes, input name, ...).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include <porta/error.hpp>

namespace unit_test {

// Runs `call`; it must throw porta::Error with `code` and a message containing every `mention`.
template <class Call>
void check_error(Call&& call, porta::ErrorCode code,
                 std::initializer_list<std::string_view> mentions, const char* file, int line) {
  INFO("expected a porta::Error from the call at " << file << ":" << line);
  bool thrown = false;
  try {
    call();
  } catch (const porta::Error& e) {
    thrown = true;
    const std::string message = e.what();
    INFO("message: " << message);
    CHECK(porta::error_code_name(e.code()) == porta::error_code_name(code));
    for (auto mention : mentions) {
      INFO("the message should mention '" << mention << "'");
      CHECK(message.find(mention) != std::string::npos);
    }
  }
  CHECK(thrown);
}

}  // namespace unit_test

// REQUIRE_PORTA_ERROR(expression, ErrorCode::X, "mention", ...): the expression throws a
// porta::Error with code X whose message contains each mention.
#define REQUIRE_PORTA_ERROR(expression, code, ...) \
  ::unit_test::check_error([&] { (void)(expression); }, (code), {__VA_ARGS__}, __FILE__, __LINE__)
