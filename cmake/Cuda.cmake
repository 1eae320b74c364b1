# CUDA is optional. With nvcc present the kernels/ library is compiled; without it the
# project builds CPU-only. The architecture list follows the toolkit:
#   CUDA 12.x: sm_61 (GTX 1080 Ti, the lab's workers) up to sm_90;
#   CUDA 13+:  dropped Pascal/Volta, so sm_75 up to sm_90 (and sm_120).
# -DCMAKE_CUDA_ARCHITECTURES=... overrides the choice; -DSHARDPRESS_CUDA=OFF disables CUDA.
option(SHARDPRESS_CUDA "Compile CUDA kernels when nvcc is available" ON)
set(SHARDPRESS_HAVE_CUDA OFF)

if(SHARDPRESS_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    execute_process(COMMAND ${CMAKE_CUDA_COMPILER} --version
                    OUTPUT_VARIABLE _nvcc_version_out ERROR_QUIET)
    string(REGEX MATCH "release ([0-9]+)\\.([0-9]+)" _m "${_nvcc_version_out}")
    set(SHARDPRESS_NVCC_MAJOR "${CMAKE_MATCH_1}")
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      if(SHARDPRESS_NVCC_MAJOR GREATER_EQUAL 13)
        set(CMAKE_CUDA_ARCHITECTURES "75-real;80-real;86-real;89-real;90")
      elseif(SHARDPRESS_NVCC_MAJOR EQUAL 12)
        set(CMAKE_CUDA_ARCHITECTURES "61-real;75-real;80-real;86-real;89-real;90")
      else()
        set(CMAKE_CUDA_ARCHITECTURES "61-real;75-real;80")
      endif()
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(SHARDPRESS_HAVE_CUDA ON)
    message(STATUS "shardpress: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
  else()
    message(STATUS "shardpress: nvcc not found, building CPU-only")
  endif()
endif()
