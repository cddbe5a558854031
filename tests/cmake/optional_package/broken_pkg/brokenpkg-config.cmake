# A package config that fails the way libdnnl-dev's does without ocl-icd-opencl-dev: it
# requires a dependency that is not installed.
find_package(FlatbenchDependencyThatIsNotInstalled REQUIRED)
add_library(brokenpkg::brokenpkg INTERFACE IMPORTED)
