# Boost.Asio compiled once (BOOST_ASIO_SEPARATE_COMPILATION) instead of in every translation unit.
add_library(asio STATIC ${PROJECT_SOURCE_DIR}/src/common/asio_impl.cpp)
target_compile_definitions(asio PUBLIC BOOST_ASIO_SEPARATE_COMPILATION BOOST_ASIO_NO_DEPRECATED
  BOOST_ASIO_DISABLE_BOOST_COROUTINE)
target_link_libraries(asio PUBLIC Boost::headers OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
