#pragma once
// Spillway's version: `spillway version`, the OTLP scope of its spans, the exporter's User-Agent.

namespace spillway {

inline constexpr const char* version = "0.1.0";

}  // namespace spillway
