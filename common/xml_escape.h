// Text for XML and HTML (element content and double-quoted attributes): & < > " escaped.
// One rule for the report's SVG and the status page's sign-in form.
#pragma once

#include <string>
#include <string_view>

namespace sp {

std::string xml_escape(std::string_view s);

}  // namespace sp
