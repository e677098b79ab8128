// Parses --shape B=..,T=..,H=..,K=..,V=.. and counts the forward's FLOPs as MATH.md section 2 does.
#include "ProblemShape.h"

#include <cstdlib>

bool decayc::parseShape(const std::string &text, ProblemShape &shape, std::string &error) {
  size_t position = 0;
  while (position < text.size()) {
    size_t comma = text.find(',', position);
    std::string item =
        text.substr(position, comma == std::string::npos ? std::string::npos : comma - position);
    position = comma == std::string::npos ? text.size() : comma + 1;
    size_t equals = item.find('=');
    char *end = nullptr;
    long long value =
        equals == std::string::npos ? 0 : std::strtoll(item.c_str() + equals + 1, &end, 10);
    if (equals != 1 || !end || *end != '\0' || value < 1) {
      error = "--shape expects B=..,T=..,H=..,K=..,V=.. with positive sizes, got '" + item + "'";
      return false;
    }
    switch (item[0]) {
    case 'B': shape.B = value; break;
    case 'T': shape.T = value; break;
    case 'H': shape.H = value; break;
    case 'K': shape.K = value; break;
    case 'V': shape.V = value; break;
    default:
      error = "--shape: unknown dim '" + item.substr(0, 1) + "' (expected B, T, H, K, V)";
      return false;
    }
  }
  return true;
}

double decayc::forwardFlops(const ProblemShape &shape, int64_t chunkSize) {
  return 2.0 * shape.T * (chunkSize * (shape.K + shape.V) + 2.0 * shape.K * shape.V) * shape.B *
         shape.H;
}

double decayc::recurrentFlops(const ProblemShape &shape) {
  return 5.0 * static_cast<double>(shape.B) * static_cast<double>(shape.T) *
         static_cast<double>(shape.H) * static_cast<double>(shape.K) * static_cast<double>(shape.V);
}
